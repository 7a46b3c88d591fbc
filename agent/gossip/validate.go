package gossip

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode/utf8"
)

// Limits on the fields of node metadata and messages. Decode rejects
// anything beyond them; SetStatus trims what it can.
const (
	MaxNodeName        = 253 // bytes in a node name
	MaxRef             = 200 // bytes in a git ref name
	MaxFailingAddrs    = 20  // failing resource addresses kept in a Status
	MaxFailingAddr     = 128 // bytes in one failing resource address
	MaxStatusMessage   = 512 // bytes in Status.Message
	MaxLabelKey        = 128 // bytes in a label key
	MaxLabelValue      = 256 // bytes in a label value
	MaxVersion         = 64  // bytes in an agent version
	MaxAPIAddr         = 255 // bytes in an API address
	maxRevision        = MaxRef + len("@sha1:") + hashHexLen
	maxCount           = 1 << 24 // Resources, Drifted, Failing
	hashHexLen         = 40
	hashLen            = 20
	maxLastApplyMillis = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// States are the values Status.State may take; "" means unknown.
var states = [...]string{"", "converged", "drifted", "failing", "refused", "syncing", "starting"}

func stateCode(s string) (byte, bool) {
	for i, v := range states {
		if v == s {
			return byte(i), true
		}
	}
	return 0, false
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validNodeName reports whether s is a node name: 1 to 253 bytes of letters,
// digits, '.', '_' and '-', starting with a letter or digit (any host name
// qualifies).
func validNodeName(s string) error {
	if s == "" {
		return errors.New("empty node name")
	}
	if len(s) > MaxNodeName {
		return fmt.Errorf("node name longer than %d bytes", MaxNodeName)
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("node name %q does not start with a letter or digit", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("node name %q has a character other than letters, digits, '.', '_' and '-'", s)
		}
	}
	return nil
}

// validRef reports whether s is a git ref name (a branch or tag name such as
// "main", "release/1.2" or "refs/heads/main") by the rules of
// git-check-ref-format, at most MaxRef bytes.
func validRef(s string) error {
	if s == "" {
		return errors.New("empty ref")
	}
	if len(s) > MaxRef {
		return fmt.Errorf("ref longer than %d bytes", MaxRef)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte("~^:?*[\\", c) >= 0 {
			return fmt.Errorf("ref %q has a forbidden character", s)
		}
	}
	switch {
	case s == "@",
		strings.HasPrefix(s, "/"), strings.HasPrefix(s, "-"), strings.HasPrefix(s, "."),
		strings.HasSuffix(s, "/"), strings.HasSuffix(s, "."), strings.HasSuffix(s, ".lock"),
		strings.Contains(s, ".."), strings.Contains(s, "//"), strings.Contains(s, "/."),
		strings.Contains(s, "@{"):
		return fmt.Errorf("ref %q is not a valid git ref name", s)
	}
	return nil
}

// validHash reports whether s is a full SHA-1 commit hash in lowercase hex.
func validHash(s string) error {
	if len(s) != hashHexLen {
		return fmt.Errorf("hash is %d characters, want %d hex digits", len(s), hashHexLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return errors.New("hash is not lowercase hex")
		}
	}
	return nil
}

// validRevision reports whether s is empty or a revision: "REF@sha1:HASH" or
// "sha1:HASH".
func validRevision(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > maxRevision {
		return fmt.Errorf("revision longer than %d bytes", maxRevision)
	}
	ref, hash, pinned := "", "", false
	if rest, ok := strings.CutPrefix(s, "sha1:"); ok {
		hash, pinned = rest, true
	} else if i := strings.LastIndex(s, "@sha1:"); i >= 0 {
		ref, hash = s[:i], s[i+len("@sha1:"):]
	} else {
		return fmt.Errorf("revision %q is neither REF@sha1:HASH nor sha1:HASH", s)
	}
	if !pinned {
		if err := validRef(ref); err != nil {
			return fmt.Errorf("revision %q: %w", s, err)
		}
	}
	if err := validHash(hash); err != nil {
		return fmt.Errorf("revision %q: %w", s, err)
	}
	return nil
}

// validText reports whether s is valid UTF-8 of at most limit bytes with no
// control characters (newlines and tabs are allowed when multiline is set).
func validText(what, s string, limit int, multiline bool) error {
	if len(s) > limit {
		return fmt.Errorf("%s longer than %d bytes", what, limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if isControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return fmt.Errorf("%s has a control character", what)
		}
	}
	return nil
}

func isControl(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f
}

// sanitizeText makes s valid for validText: invalid UTF-8 and control
// characters become replacement characters or spaces, and the result is cut
// at a character boundary to at most limit bytes.
func sanitizeText(s string, limit int, multiline bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if isControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// validLabelKey reports whether k is a label key: 1 to 128 bytes of letters,
// digits, '.', '_', '-' and '/', starting with a letter or digit.
func validLabelKey(k string) error {
	if k == "" {
		return errors.New("empty label key")
	}
	if len(k) > MaxLabelKey {
		return fmt.Errorf("label key %q... longer than %d bytes", k[:32], MaxLabelKey)
	}
	if !isAlnum(k[0]) {
		return fmt.Errorf("label key %q does not start with a letter or digit", k)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isAlnum(c) && strings.IndexByte("._-/", c) < 0 {
			return fmt.Errorf("label key %q has a character other than letters, digits, '.', '_', '-' and '/'", k)
		}
	}
	return nil
}

// validLabels checks every key and value of a label set.
func validLabels(labels map[string]string) error {
	for k, v := range labels {
		if err := validLabelKey(k); err != nil {
			return err
		}
		if err := validText(fmt.Sprintf("label %q value", k), v, MaxLabelValue, false); err != nil {
			return err
		}
	}
	return nil
}

// validAPIAddr reports whether s is empty or a host:port address.
func validAPIAddr(s string) error {
	if s == "" {
		return nil
	}
	if err := validText("API address", s, MaxAPIAddr, false); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" || strings.ContainsAny(s, " ") {
		return fmt.Errorf("API address %q is not host:port", s)
	}
	return nil
}
