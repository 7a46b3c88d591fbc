package testenv

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCAWriteCert(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   CertOptions
		cn     string
		usages []x509.ExtKeyUsage
		// hosts are the names the certificate must be valid for.
		hosts []string
	}{
		{
			name:   "loopback server",
			opts:   CertOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"}},
			cn:     "127.0.0.1",
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			hosts:  []string{"127.0.0.1", "::1", "localhost"},
		},
		{
			name:   "peer",
			opts:   CertOptions{IPs: []net.IP{net.ParseIP("10.99.0.7")}, ClientAuth: true},
			cn:     "10.99.0.7",
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			hosts:  []string{"10.99.0.7"},
		},
		{
			name:   "name only",
			opts:   CertOptions{DNSNames: []string{"git.test"}},
			cn:     "git.test",
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			hosts:  []string{"git.test"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			caFile := filepath.Join(dir, "ca.pem")
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			ca := NewCA(t, "test CA "+tc.name, caFile)
			ca.WriteCert(t, certFile, keyFile, tc.opts)

			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				t.Fatal(err)
			}
			caCerts := parseCerts(t, caPEM)
			if len(caCerts) != 1 || !caCerts[0].IsCA || caCerts[0].Subject.CommonName != "test CA "+tc.name {
				t.Fatalf("CA file holds %d certificates, want the one CA %q", len(caCerts), "test CA "+tc.name)
			}
			certPEM, err := os.ReadFile(certFile)
			if err != nil {
				t.Fatal(err)
			}
			certs := parseCerts(t, certPEM)
			if len(certs) != 2 || !bytes.Equal(certs[1].Raw, caCerts[0].Raw) {
				t.Fatalf("certificate file holds %d certificates, want the host's then the CA's", len(certs))
			}
			leaf := certs[0]
			if leaf.IsCA || leaf.Subject.CommonName != tc.cn || !slices.Equal(leaf.ExtKeyUsage, tc.usages) ||
				leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("certificate: CA %v, CN %q, usages %v/%v; want a leaf %q with digital signature and %v",
					leaf.IsCA, leaf.Subject.CommonName, leaf.KeyUsage, leaf.ExtKeyUsage, tc.cn, tc.usages)
			}
			pool, err := caPool(caFile)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.hosts {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool, KeyUsages: tc.usages}); err != nil {
					t.Errorf("verify for %s: %v", h, err)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "192.0.2.1", Roots: pool}); err == nil {
				t.Error("the certificate is valid for 192.0.2.1, a name it was not made for")
			}
			if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
				t.Errorf("key pair: %v", err)
			}
			fi, err := os.Stat(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("the key file has mode %v, want it private to its owner", fi.Mode().Perm())
			}
		})
	}
}

func TestCAWriteCertSerials(t *testing.T) {
	dir := t.TempDir()
	ca := NewCA(t, "test CA", filepath.Join(dir, "ca.pem"))
	var serials []string
	for _, name := range []string{"a", "b"} {
		certFile := filepath.Join(dir, name+".pem")
		ca.WriteCert(t, certFile, filepath.Join(dir, name+".key"), CertOptions{DNSNames: []string{name}})
		b, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, parseCerts(t, b)[0].SerialNumber.String())
	}
	if serials[0] == serials[1] {
		t.Errorf("two certificates of one CA share the serial number %s", serials[0])
	}
}

func parseCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}
