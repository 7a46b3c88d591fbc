// Package rootfs keeps unpacked image layers and mounts container root
// filesystems on them with overlayfs.
//
// A Store lives in one directory:
//
//	layers/<chain id hex>/           one unpacked layer, the overlay lower dir
//	layers/.tmp-<hex>-*, .rm-<hex>-* layers being unpacked or removed
//	locks/<chain id hex>.lock        flock per chain ID, never removed
//	empty/                           the lower dir of images without layers
//	containers/<id>/{upper,work,merged}
//
// A layer is identified by its ChainID (OCI image-spec: the ChainID of the
// first layer is its DiffID, the next is sha256 of the previous ChainID, a
// space and the layer's DiffID), because the same DiffID on top of different
// parents is a different filesystem. Each is unpacked once and shared by
// every image and container. Unpacking goes into a temporary directory that
// is renamed into place only once the content hashed to the expected DiffID
// and is synced to disk, so a directory named after a chain ID is always
// complete. Processes that prepare the same chain at once serialise on the
// chain's lock; the second one finds the layer done.
//
// Overlays are mounted with the new mount API, one "lowerdir+" parameter per
// layer, so the one-page limit of the old mount data does not bound the
// number of layers (overlayfs itself allows 500). Kernels without
// "lowerdir+" (before 6.8) get the classic lowerdir= option, which fits
// about 44 layers under /var/lib/berth and fails with a clear error beyond. Mounts use
// index=off, metacopy=off and redirect_dir=off, so that the upper directory
// holds complete files and plain directories that layer.Diff can turn into
// a layer.
//
// The Store does not know which containers use which layers: the caller
// removes a layer only when no image needs it, and RemoveLayer refuses a
// layer that a mounted overlay still uses.
package rootfs
