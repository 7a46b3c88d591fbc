package gossip

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// metaVersion is the version byte that starts node metadata. Version 1 is:
// the agent version, the API address, the number of labels, then each
// label's key and value in increasing key order, all as
// varint-length-prefixed strings (the count as a varint).
const metaVersion byte = 1

// nodeMeta is what a node tells about itself in memberlist's node metadata.
type nodeMeta struct {
	Labels  map[string]string
	Version string
	APIAddr string
}

func (m nodeMeta) validate() error {
	if err := validLabels(m.Labels); err != nil {
		return err
	}
	if err := validText("agent version", m.Version, MaxVersion, false); err != nil {
		return err
	}
	return validAPIAddr(m.APIAddr)
}

// encodeMeta returns the metadata's wire form, or an error naming the labels
// when it exceeds memberlist's limit.
func encodeMeta(m nodeMeta) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	w := writer{}
	w.byte(metaVersion)
	w.string(m.Version)
	w.string(m.APIAddr)
	keys := slices.Sorted(maps.Keys(m.Labels))
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.string(k)
		w.string(m.Labels[k])
	}
	if len(w.b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node labels too large: labels %s, agent version and API address take %d bytes, limit %d",
			strings.Join(keys, ", "), len(w.b), memberlist.MetaMaxSize)
	}
	return w.b, nil
}

// errMetaVersion reports metadata of a version this agent does not know,
// from a newer agent.
var errMetaVersion = errors.New("unknown node metadata version")

// decodeMeta parses and validates node metadata.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) > memberlist.MetaMaxSize {
		return m, fmt.Errorf("node metadata is %d bytes, limit %d", len(b), memberlist.MetaMaxSize)
	}
	if len(b) == 0 {
		return m, errors.New("empty node metadata")
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("%w %d", errMetaVersion, b[0])
	}
	r := reader{b: b, off: 1}
	m.Version = r.string("agent version", MaxVersion)
	m.APIAddr = r.string("API address", MaxAPIAddr)
	n := r.bounded("label count", memberlist.MetaMaxSize)
	prev := ""
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.string("label key", MaxLabelKey)
		v := r.string("label value", MaxLabelValue)
		if r.err != nil {
			break
		}
		if i > 0 && k <= prev {
			r.fail(errors.New("label keys not in increasing order"))
			break
		}
		prev = k
		if m.Labels == nil {
			m.Labels = make(map[string]string)
		}
		m.Labels[k] = v
	}
	r.end()
	if r.err != nil {
		return nodeMeta{}, fmt.Errorf("node metadata: %w", r.err)
	}
	if err := m.validate(); err != nil {
		return nodeMeta{}, fmt.Errorf("node metadata: %w", err)
	}
	return m, nil
}
