// Package testenv builds the fixtures that berth's tests share: a real
// container registry on 127.0.0.1 (Debian's docker-registry, optionally with
// htpasswd basic auth and TLS) and small deterministic images made from
// Debian's static busybox or from a static Go program compiled in the test,
// and simulated hosts: network namespaces on a shared LAN bridge (NewLAN,
// NewSimHost) in which berth runs as on a host of its own.
//
// The package is for tests only (it takes a testing.TB everywhere and fails
// or skips the test itself) but it is a normal package so that tests of
// several packages can import it. Only the simulated hosts need root.
//
// # Debian packages
//
// The fixtures need these Debian packages on the test machine (see
// DebianPackages); a test that needs a missing one is skipped with a message
// naming the package:
//
//   - busybox-static: /bin/busybox for BusyboxImage
//   - docker-registry: /usr/bin/docker-registry for StartRegistry
//   - apache2-utils: htpasswd, for StartRegistry with Auth
//   - iproute2 and nftables: ip and nft, for simulated hosts
//   - git: git daemon and git itself, for NewGitServer
//   - gnupg and openssh-client: gpg and ssh-keygen, for signed commits
//
// GoImage needs the go command on PATH (any test run has it).
package testenv

// DebianPackages returns the Debian packages the fixtures need, for the
// apt-get line of the CI script.
func DebianPackages() []string {
	return []string{"busybox-static", "docker-registry", "apache2-utils", "iproute2", "nftables", "git", "gnupg", "openssh-client"}
}
