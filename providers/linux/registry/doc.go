// Package registry talks to container registries for the linux provider:
// it parses image references, resolves tags to digests, pulls images into
// the content store and pushes stored images. It is the only user of
// go-containerregistry's remote package in berth.
//
// # References
//
// ParseReference reads references the way docker does and normalises them:
// "busybox" is "docker.io/library/busybox:latest",
// "127.0.0.1:5000/tools/app:1" keeps its registry, a reference may carry a
// tag, a sha256 digest or both. Reference.String round-trips.
//
// # Transport security
//
// berth speaks HTTPS to every registry, trusting the system CAs plus the
// Endpoint's CAFile, unless the Endpoint is declared Insecure. This is
// stricter than go-containerregistry, which quietly falls back to plain HTTP
// for 127.0.0.1, localhost and private (RFC 1918) addresses: a transport
// wrapper refuses every plain-HTTP request to a registry not declared
// insecure. A registry that answers plain HTTP then fails with a PlainHTTP
// error that says to set insecure = true. An insecure registry is tried
// over HTTPS first (certificates still verified) and then over HTTP.
//
// # Credentials
//
// The Endpoint's username and password are used when it has a username.
// Otherwise the docker config file (Options.DockerConfig, $DOCKER_CONFIG or
// ~/.docker/config.json) gives the credentials for the registry's host, as
// docker reads them (auths, credHelpers, credsStore), and without an entry
// access is anonymous. Which Endpoint applies is the caller's choice: the
// one passed to a method, else the one in Options.Endpoints whose Address
// is the reference's registry.
//
// # Errors
//
// Every error from a registry operation is a *Error whose Kind says what
// went wrong (Unauthorized, NotFound, PlainHTTP, Unreachable, Other). Its
// message names the reference, the registry and the user, and never holds
// the password.
//
// # Platforms
//
// When a reference names an index (a multi-platform image), Resolve and
// Pull use the image for linux and the architecture berth runs on (see
// Platform): Resolve returns that image manifest's digest, not the index
// digest, and Pull stores that image.
package registry
