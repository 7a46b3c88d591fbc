// Package layer reads and writes image layers: uncompressed tar streams in
// the docker and OCI layer format.
//
// Unpack extracts a layer into an empty directory that later becomes an
// overlayfs lower directory, and Diff writes the changes recorded in an
// overlayfs upper directory as a layer (for `berth commit`). Both return the
// layer's DiffID, the sha256 digest of the whole uncompressed stream.
//
// # Whiteouts
//
// A layer marks a deleted path NAME with an entry ".wh.NAME" and a directory
// whose lower content is hidden with an entry "DIR/.wh..wh..opq". Unpack turns
// them into what overlayfs understands: a character device 0/0 at NAME and the
// extended attribute trusted.overlay.opaque="y" on DIR. Diff does the reverse.
// Other names that start with ".wh." (aufs metadata such as ".wh..wh.plnk",
// and anything below a directory with such a name) are skipped.
//
// # Safety
//
// A layer comes from outside and Unpack treats it as hostile: nothing outside
// the target directory is ever created, changed or followed. Every path is
// resolved from a descriptor of the target directory with openat2 and
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV,
// so no symlink is followed while extracting, not even one that would stay
// inside the directory; files are created with O_EXCL|O_NOFOLLOW and their
// attributes set through the new descriptor. The decisions, per case:
//
//   - A leading "/" is stripped: absolute names are relative to the layer root.
//   - A name whose ".." components climb above the root is an error
//     (*UnsafeEntryError, `layer entry "../x" climbs out of the root`).
//   - An entry whose parent path goes through a symlink (for example "a" ->
//     "/etc" followed by "a/passwd", or "a" -> "../../.."), and a hard link
//     whose target does, is an error. Tar producers never write such entries,
//     because they do not descend into symlinks.
//   - A hard link may only point at an entry already extracted in the same
//     directory; a target that climbs out is an error, a missing one fails.
//   - A later entry replaces an earlier one of the same name: the old one is
//     removed (a directory with its content) and the new one created with
//     O_EXCL, so nothing is ever written through an old symlink. A directory
//     stays when the new entry is also a directory.
//   - An entry that names the root itself is skipped when it is a directory
//     (the root's attributes come from the container's upper directory) and
//     is an error otherwise.
//   - Character and block devices are skipped: containers get /dev from the
//     runtime. Sockets and unknown entry types are skipped too.
//   - Symlink targets are stored verbatim and never resolved. Code that later
//     works on the merged tree from the host (volume copy-up, copying files
//     in or out) must resolve paths inside that root in the same way.
//   - Ownership comes from the numeric uid and gid only; user and group names
//     are ignored, so no /etc/passwd of the layer is ever read.
//   - Extended attributes from PAX records are applied to files and
//     directories when they are in the user, trusted or security.capability
//     namespaces, except the overlayfs ones (trusted.overlay.*, user.overlay.*)
//     which a layer could use to redirect lookups. A failure to set one of
//     them (unsupported, not permitted) is ignored.
//
// Unpack never changes the working directory and opens every descriptor with
// O_CLOEXEC, so nothing leaks into processes started later (CVE-2024-21626).
package layer
