// Package content is berth's image content store: the blobs of images
// (manifests, configs, compressed layers) kept once each by digest, and
// records of the images made of them, with the names they go by.
//
// # Layout
//
// Everything lives under the root directory given to Open:
//
//	blobs/sha256/<hex>   one file per blob, written once, read only
//	images/<hex>.json    one record per image, named by its manifest digest
//	names.json           image names ("docker.io/library/busybox:latest") → digest
//	tmp/                 blobs and records being written
//	gc.lock, meta.lock   flock(2) lock files
//
// Every file is written to tmp/ first, synced and renamed into place, so a
// crash never leaves a half-written blob, record or name table. PutBlob
// hashes what it writes and refuses content that does not match the
// digest it was given, so a blob file always holds what its name says.
//
// # Concurrency
//
// Several processes (the berth CLI and the agent) may use one store at the
// same time. Writers of names and records hold an exclusive flock on
// meta.lock. Anything that writes blobs or relies on them staying (PutBlob,
// PutImage, Save, Load, Commit and holders of a Lease) holds a shared lock
// on gc.lock, and garbage collection (Prune, and Remove when it can) holds
// it exclusively, so it never deletes a blob that an unfinished pull or
// load is about to reference. A pull that writes blobs and then records the
// image takes a Lease for the whole time.
//
// # Names
//
// Image names are normalised full references ("127.0.0.1:5000/tools/app:1",
// "docker.io/library/busybox:latest"). The store keeps the names it is
// given; normalising is the caller's business, except for names read from
// archives by Load, which the store normalises itself.
//
// # Formats
//
// Pulled images keep their manifests byte for byte (docker v2 schema 2 or
// OCI), so their digests are the registry's. Save writes a tarball that is
// both a `docker save` archive (manifest.json, repositories) and an OCI
// image layout (oci-layout, index.json, blobs/sha256/…), like docker 25 and
// later do; Load reads either kind, verifying every blob digest and every
// layer's DiffID before it stores anything. Images loaded from a docker
// archive that has no OCI index get an OCI manifest made by Load (docker
// archives carry no manifests), so their digest differs from the one the
// image has on a registry.
package content
