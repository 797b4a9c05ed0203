import ArgumentParser
import FlexSPCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The largest file the command line reads (length files, plans, cost models): 256 MiB.
let maxInputBytes = 256 << 20

/// The system's words for an errno value, e.g. "Permission denied".
func systemError(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// What kind of thing is at a path, for messages; nil when nothing is there.
private func kind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: "a regular file"
    case S_IFDIR: "a directory"
    case S_IFLNK: "a symbolic link"
    case S_IFIFO: "a FIFO"
    case S_IFCHR: "a character device"
    case S_IFBLK: "a block device"
    case S_IFSOCK: "a socket"
    default: "not a regular file"
    }
}

/// Reads a whole file (or standard input for `-`), with an error that names it and says why
/// in plain words: no such file, a directory, permission denied, too large.
func readFile(_ path: String) throws -> Data {
    if path == "-" { return try readAll(fd: STDIN_FILENO, path: "standard input") }
    var info = stat()
    guard stat(path, &info) == 0 else {
        throw CLIError.unreadable(path: path, reason: errno == ENOENT ? "no such file" : systemError(errno))
    }
    // A FIFO or device could block or never end: only regular files are read (- is stdin).
    guard info.st_mode & S_IFMT == S_IFREG else {
        throw CLIError.unreadable(path: path, reason: "it is \(kind(info.st_mode)), not a regular file (use - for standard input)")
    }
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw CLIError.unreadable(path: path, reason: systemError(errno)) }
    defer { close(fd) }
    return try readAll(fd: fd, path: path)
}

private func readAll(fd: Int32, path: String) throws -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw CLIError.unreadable(path: path, reason: systemError(errno))
        }
        if count == 0 { return data }
        data.append(contentsOf: buffer[..<count])
        guard data.count <= maxInputBytes else {
            throw CLIError.unreadable(path: path, reason: "it is larger than \(maxInputBytes >> 20) MiB")
        }
    }
}

/// Checks that `path` can be written by `writeFile`: nothing there yet, or a regular file,
/// in an existing directory. Anything else (a symbolic link, a FIFO, a device, a directory)
/// is refused rather than replaced.
func checkWritable(_ path: String) throws {
    guard !path.isEmpty else { throw CLIError.unwritable(path: path, reason: "the path is empty") }
    var info = stat()
    if lstat(path, &info) == 0 {
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw CLIError.unwritable(path: path, reason: "it is \(kind(info.st_mode)); flexsp writes only to a regular file or a new one")
        }
    } else if errno != ENOENT {
        throw CLIError.unwritable(path: path, reason: systemError(errno))
    }
    let directory = (path as NSString).deletingLastPathComponent
    let folder = directory.isEmpty ? "." : directory
    guard stat(folder, &info) == 0 else {
        throw CLIError.unwritable(path: path, reason: errno == ENOENT ? "no such directory \(folder)" : systemError(errno))
    }
    guard info.st_mode & S_IFMT == S_IFDIR else { throw CLIError.unwritable(path: path, reason: "\(folder) is not a directory") }
}

/// Writes text to a regular file (or a new one) whole: into a temporary file beside it, then
/// renamed over it, so a reader never sees half a file. Refuses what `checkWritable` refuses.
func writeFile(_ text: String, to path: String) throws {
    try checkWritable(path)
    let directory = (path as NSString).deletingLastPathComponent
    let folder = directory.isEmpty ? "." : directory
    var template = Array("\(folder)/.flexsp-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw CLIError.unwritable(path: path, reason: systemError(errno)) }
    // mkstemp filled in the X's; the name ends at the terminating NUL.
    let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var done = false
    defer {
        if !done { unlink(temporary) }
    }
    // Keep an existing file's permissions; a new file gets the usual 0666 less the umask.
    var info = stat()
    let mask = umask(0)
    umask(mask)
    let mode: mode_t = stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0o666 & ~mask
    fchmod(fd, mode)
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            let reason = systemError(errno)
            close(fd)
            throw CLIError.unwritable(path: path, reason: reason)
        }
        bytes = bytes.dropFirst(written)
    }
    guard close(fd) == 0 else { throw CLIError.unwritable(path: path, reason: systemError(errno)) }
    // The path may have changed since the check; refuse again rather than replace a non-file.
    try checkWritable(path)
    guard rename(temporary, path) == 0 else { throw CLIError.unwritable(path: path, reason: systemError(errno)) }
    done = true
}
