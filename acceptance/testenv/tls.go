package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA is a certificate authority made for a test: an ECDSA P-256 key and
// a self-signed certificate valid from an hour ago for two days. NewCA
// makes one; WriteCert signs certificates with it.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// CertOptions says what a certificate that CA.WriteCert makes is for.
type CertOptions struct {
	// IPs and DNSNames are the certificate's subject alternative names.
	// Its common name is the first IP, or the first DNS name when there
	// is no IP.
	IPs      []net.IP
	DNSNames []string
	// ClientAuth lets the certificate authenticate clients as well as
	// servers (every certificate is good for server authentication).
	ClientAuth bool
}

// NewCA makes a CA whose certificate has the common name name and writes
// that certificate as PEM to caFile (mode 0644), the file a client that
// trusts the CA reads.
func NewCA(t testing.TB, name, caFile string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return &CA{cert: cert, key: key}
}

// WriteCert makes a key and a certificate for it signed by c, valid from
// an hour ago for two days for the names of opts, and writes them as PEM:
// the certificate followed by c's certificate to certFile (mode 0644), so
// that a peer that trusts the certificates of its own file trusts this
// one, and the PKCS #8 key to keyFile (mode 0600). Each certificate gets a
// random serial number.
func (c *CA) WriteCert(t testing.TB, certFile, keyFile string, opts CertOptions) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	cn := ""
	switch {
	case len(opts.IPs) > 0:
		cn = opts.IPs[0].String()
	case len(opts.DNSNames) > 0:
		cn = opts.DNSNames[0]
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if opts.ClientAuth {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(48 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		IPAddresses:  opts.IPs,
		DNSNames:     opts.DNSNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})...)
	writeFile(t, certFile, chain, 0o644)
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}
