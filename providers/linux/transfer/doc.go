// Package transfer copies files between the host and a container's root
// filesystem, as `berth cp` does, and clones image directories into volumes.
//
// CopyIn and CopyOut follow docker cp: a destination that is an existing
// directory receives the source under its own name; a destination that does
// not exist becomes the copy; a source ending in "/." stands for the contents
// of a directory; a trailing "/" demands a directory. A source that is a
// symbolic link is copied as a link, and so is every link inside a copied
// tree: links are never followed while copying. Entries belong to the caller
// (root in a container, the invoking user on the host), as with docker cp
// without -a; they keep their permission bits and times, but lose setuid and
// setgid bits that would change hands, and files copied out to the host
// lose them always. Extended attributes (file capabilities among them) are
// not copied. Device nodes are refused and sockets skipped: berth cp never
// creates a device on the host or in a container.
//
// CloneDir is the archive variant used to fill a volume from an image: it
// keeps owners, every mode bit, extended attributes, hard links, device nodes
// and times.
//
// Every container-side path is resolved with openat2(2) and RESOLVE_IN_ROOT,
// so that symbolic links are followed as if the root were "/" and can never
// lead outside it (an absolute link to /etc/shadow means <root>/etc/shadow,
// "../../.." stops at the root). Kernels without openat2 (before Linux 5.6)
// get the pure Go resolver of github.com/cyphar/filepath-securejoin instead.
//
// The copy itself is done with file descriptors only (CVE-2018-15664, the
// docker cp symlink-exchange race): the top directories are opened once
// within the root, and every entry below them is opened, created, renamed or
// linked with *at system calls relative to its parent's descriptor, with
// O_NOFOLLOW and O_EXCL. A container process that swaps a directory for a
// symbolic link while a copy runs makes the copy fail; it cannot redirect a
// read or a write outside the root. Files are written to a temporary name in
// their directory and renamed over the destination, so an existing file is
// replaced rather than written through.
package transfer
