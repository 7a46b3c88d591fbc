// Package planfile reads and writes saved plans (berth plan -out FILE).
//
// A saved plan records what was planned and from what: the configuration
// directory, the variable values that are not sensitive, the host, the
// targets and the plan's fingerprint. It never holds a sensitive value:
// applying it evaluates the configuration again (sensitive variables must be
// given again) and refuses when the fingerprint differs, which means that the
// configuration, the inventory or the live state changed since.
package planfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FormatVersion is the version of the file format.
const FormatVersion = 1

// File is the content of a saved plan.
type File struct {
	FormatVersion int       `json:"format_version"`
	BerthVersion  string    `json:"berth_version"`
	CreatedAt     time.Time `json:"created_at"`
	// Dir is the absolute configuration directory.
	Dir string `json:"dir"`
	// Vars are the -var values that are not sensitive, in order.
	Vars []Var `json:"vars,omitempty"`
	// VarFiles are the -var-file paths, absolute, in order.
	VarFiles []string `json:"var_files,omitempty"`
	// SensitiveVars names the sensitive variables whose values were left
	// out; they must be given again when applying.
	SensitiveVars []string          `json:"sensitive_vars,omitempty"`
	HostName      string            `json:"host_name"`
	HostLabels    map[string]string `json:"host_labels,omitempty"`
	Targets       []string          `json:"targets,omitempty"`
	Destroy       bool              `json:"destroy,omitempty"`
	Fingerprint   string            `json:"fingerprint"`
	// Changes lists the planned actions, for people and for the check that
	// the plan applied is the plan saved.
	Changes []Change `json:"changes"`
}

// Var is one -var value.
type Var struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Change is one planned action.
type Change struct {
	Address string `json:"address"`
	Action  string `json:"action"`
}

// Write saves f at path with mode 0600, atomically.
func Write(path string, f *File) error {
	f.FormatVersion = FormatVersion
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".berthplan-*")
	if err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

// ErrNotPlan tells that a file is not a saved plan.
var ErrNotPlan = errors.New("not a berth plan file")

// Read loads a saved plan.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil || f.FormatVersion == 0 || f.Fingerprint == "" {
		return nil, fmt.Errorf("%s: %w", path, ErrNotPlan)
	}
	if f.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: plan format version %d is not supported (this berth reads version %d); plan again", path, f.FormatVersion, FormatVersion)
	}
	return &f, nil
}

// IsPlanFile reports whether path is a regular file that holds a saved plan.
func IsPlanFile(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	_, err = Read(path)
	return err == nil
}
