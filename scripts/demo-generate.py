"""The demo's last step: load the exported model with plain transformers (no FlexSP code) and
continue a prompt.  python scripts/demo-generate.py out/demo/model ["prompt"]"""

import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

directory = sys.argv[1]
prompt = sys.argv[2] if len(sys.argv) > 2 else "Return the number of"
tokenizer = AutoTokenizer.from_pretrained(directory)
model = AutoModelForCausalLM.from_pretrained(directory)
torch.manual_seed(0)
inputs = tokenizer(prompt, return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=40, do_sample=True, top_k=20, temperature=0.8,
                        pad_token_id=tokenizer.eos_token_id)
print(f"{type(model).__name__} from {directory}, {model.num_parameters():,} parameters")
print(f"prompt: {prompt!r}")
print(f"continuation: {tokenizer.decode(output[0][inputs['input_ids'].shape[1]:])!r}")
