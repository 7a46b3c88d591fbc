// Package volume keeps berth's named volumes on the host.
//
// A Store lives in one directory (by default <state dir>/volumes). Each
// volume is a directory <root>/<name> holding the volume's data in _data
// (the directory bind-mounted into containers) and a small JSON metadata
// file, meta.json: the owner token of the berth object that created it, its
// labels, its creation time, whether the volume has been filled from an
// image (copied_up), and the containers that use it. Metadata is written
// atomically (temporary file, fsync, rename, fsync of the directory), and
// every change is made under an exclusive flock(2) on <root>/.lock, so that
// the CLI, the agent and the provider can share a store.
//
// # Names
//
// Names follow Docker's rule for local volumes: a letter or digit, then
// letters, digits, "_", "." and "-", at most 128 characters. Entries of the
// store directory that start with "." are the store's own (lock, volumes
// being created or removed).
//
// # Copy-up happens once
//
// CopyUp fills a volume from the image's content at the mount path, as
// Docker does for a fresh volume, and it does so at most once in the
// volume's life: the first call decides, and records its decision in
// copied_up. If the volume already holds data, or a container already uses
// it, nothing is copied. If the image has nothing at that path, nothing is
// copied either. In every case later calls never copy again, so an image
// upgrade never refreshes a volume: data in a volume belongs to the
// application, not to the image.
//
// The source path is resolved within the image's root filesystem, symbolic
// links included (CVE-2022-23648: a link in an image must not make berth
// copy host files into a volume); the copy is done by transfer.CloneDir
// with file descriptors only, keeping owners, modes, extended attributes,
// links, hard links and times.
//
// # Crash safety of copy-up
//
// The copy is written to <root>/<name>/copyup-XXXX/data, next to _data and
// outside it, while the copying process holds a flock on copyup-XXXX. When
// the copy is complete the file system is synced (syncfs), and only then,
// under the store lock, is copyup-XXXX/data renamed over _data, which
// rename(2) allows only because _data is an empty directory: the volume
// goes from empty to complete in one atomic step. Then copied_up is
// recorded. So:
//
//   - a crash during the copy leaves _data empty and copied_up unset; the
//     next CopyUp copies again, and a stale copyup-XXXX (no longer locked)
//     is removed by Open and CopyUp;
//   - a crash after the rename but before copied_up is written leaves a
//     complete _data: the next CopyUp finds data in the volume and records
//     copied_up without copying;
//   - data already in a volume is never removed or overwritten, because
//     the rename cannot replace a directory that is not empty.
//
// The volume's _data directory changes inode when it is filled. That is
// why CopyUp never copies into a volume in use: a running container's bind
// mount would keep the old, empty directory.
//
// # Removal
//
// Remove refuses a volume that a container uses (see Use and Release). It
// renames the volume to <root>/.trash-… under the lock, so it disappears at
// once, then deletes it without following links and without crossing into
// another mount; a removal cut short is finished by the next Open.
package volume
