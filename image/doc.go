// Package image keeps berth's images: root filesystems imported from tar
// streams (what `docker import` sends), each unpacked once under
// <root>/images/<hex id>/rootfs and shared read-only by every container made
// from it (as the lower layer of the container's overlay), with the image's
// config and tags in the store's "images" bucket.
//
// An image's ID is the digest of its config document, which names the
// digest of the uncompressed tar (the diff ID), so identical input gives the
// identical image. Lookups, tags and removal follow Docker's rules.
//
// Unpacking goes through os.Root: no entry, link or symlink of an archive
// can reach outside the image's directory. An image appears only complete:
// it is unpacked in a temporary directory, renamed into place, then
// recorded. The package knows nothing of containers; callers say which
// containers use an image.
package image
