package testprovider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthhq/berth/providers"
)

// Environment variables read by OptionsFromEnv.
const (
	// EnvDir names the directory that holds the objects.
	EnvDir = "BERTH_TESTPROVIDER_DIR"
	// EnvFault lists faults to inject, see ParseFaults.
	EnvFault = "BERTH_TESTPROVIDER_FAULT"
	// EnvDelay is a Go duration that Read, Apply and Delete sleep for.
	EnvDelay = "BERTH_TESTPROVIDER_DELAY"
)

// Operations that a fault can hit.
const (
	OpRead   = "read"
	OpPlan   = "plan"
	OpApply  = "apply"
	OpDelete = "delete"
)

// Modes of a fault.
const (
	// ModeFail makes the operation return an error diagnostic.
	ModeFail = "fail"
	// ModeCrashBefore exits the process with status 3 before the operation
	// touches anything.
	ModeCrashBefore = "crash-before"
	// ModeCrashAfter exits the process with status 3 after the operation
	// did and persisted its work, before it answers.
	ModeCrashAfter = "crash-after"
	// ModeHang blocks the operation until its context is done (forever if
	// it never is).
	ModeHang = "hang"
)

// crashStatus is the exit status of an injected crash.
const crashStatus = 3

// Fault is one injected fault.
type Fault struct {
	// Op is the operation hit: OpRead, OpPlan, OpApply or OpDelete.
	Op string
	// Mode is what happens: ModeFail, ModeCrashBefore, ModeCrashAfter or
	// ModeHang.
	Mode string
	// Address limits the fault to the object of that owner address, e.g.
	// thing.web[1]; empty means every call of Op. Plan requests carry no
	// owner, so a plan fault with an address hits only objects that exist
	// (the provider finds their address in the private data it returns
	// from Read and Apply).
	Address string
}

// String returns the fault in the form that ParseFaults reads.
func (f Fault) String() string {
	s := f.Op + ":" + f.Mode
	if f.Address != "" {
		s += ":" + f.Address
	}
	return s
}

// ParseFaults parses a comma-separated list of faults, each
// OP:MODE[:ADDRESS], as found in BERTH_TESTPROVIDER_FAULT. An empty string
// is no fault.
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.SplitN(item, ":", 3)
		if len(parts) < 2 {
			return nil, fmt.Errorf("fault %q: want OP:MODE or OP:MODE:ADDRESS, e.g. apply:fail:thing.a", item)
		}
		f := Fault{Op: parts[0], Mode: parts[1]}
		if len(parts) == 3 {
			f.Address = parts[2]
			if f.Address == "" {
				return nil, fmt.Errorf("fault %q: the address after the second colon is empty; remove the colon or name an address such as thing.a", item)
			}
		}
		switch f.Op {
		case OpRead, OpPlan, OpApply, OpDelete:
		default:
			return nil, fmt.Errorf("fault %q: unknown operation %q; use read, plan, apply or delete", item, f.Op)
		}
		switch f.Mode {
		case ModeFail, ModeCrashBefore, ModeCrashAfter, ModeHang:
		default:
			return nil, fmt.Errorf("fault %q: unknown mode %q; use fail, crash-before, crash-after or hang", item, f.Mode)
		}
		out = append(out, f)
	}
	return out, nil
}

// Option configures the provider that New returns.
type Option func(*options)

type options struct {
	faults []Fault
	delay  time.Duration
	// exit ends the process on an injected crash; tests replace it.
	exit func(code int)
}

// WithFaults injects faults.
func WithFaults(faults ...Fault) Option {
	return func(o *options) { o.faults = append(o.faults, faults...) }
}

// WithDelay makes Read, Apply and Delete sleep for d before they work.
func WithDelay(d time.Duration) Option {
	return func(o *options) { o.delay = d }
}

// withExit replaces os.Exit for injected crashes.
func withExit(exit func(int)) Option {
	return func(o *options) { o.exit = exit }
}

// OptionsFromEnv returns the options that BERTH_TESTPROVIDER_FAULT and
// BERTH_TESTPROVIDER_DELAY ask for, reading the environment through getenv.
func OptionsFromEnv(getenv func(string) string) ([]Option, error) {
	var opts []Option
	faults, err := ParseFaults(getenv(EnvFault))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvFault, err)
	}
	if len(faults) > 0 {
		opts = append(opts, WithFaults(faults...))
	}
	if s := strings.TrimSpace(getenv(EnvDelay)); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%s=%q: want a positive Go duration such as 50ms", EnvDelay, s)
		}
		opts = append(opts, WithDelay(d))
	}
	return opts, nil
}

// DirFromEnv returns the directory that holds the objects:
// BERTH_TESTPROVIDER_DIR, else "$BERTH_STATE_DIR/testprovider". It returns
// "" when neither is set.
func DirFromEnv(getenv func(string) string) string {
	if d := getenv(EnvDir); d != "" {
		return d
	}
	if s := getenv("BERTH_STATE_DIR"); s != "" {
		return filepath.Join(s, "testprovider")
	}
	return ""
}

// match returns the fault for op and address, if any.
func (o *options) match(op, address string) (Fault, bool) {
	for _, f := range o.faults {
		if f.Op == op && (f.Address == "" || f.Address == address) {
			return f, true
		}
	}
	return Fault{}, false
}

// before applies a fault that strikes before the operation works. It
// returns error diagnostics when the operation must stop.
func (o *options) before(ctx context.Context, op, address, object string) providers.Diagnostics {
	f, ok := o.match(op, address)
	if !ok {
		return nil
	}
	switch f.Mode {
	case ModeFail:
		return providers.Diagnostics{{
			Severity: providers.Error,
			Summary:  fmt.Sprintf("injected fault: %s of %s fails", op, object),
			Detail:   fmt.Sprintf("%s=%s asks for it; unset the variable to let the operation succeed.", EnvFault, f),
		}}
	case ModeCrashBefore:
		return o.crash(f)
	case ModeHang:
		<-ctx.Done()
		return providers.Errorf("injected fault: %s of %s hung until it was cancelled: %v", op, object, ctx.Err())
	}
	return nil
}

// after applies a fault that strikes after the operation did its work.
func (o *options) after(op, address string) providers.Diagnostics {
	if f, ok := o.match(op, address); ok && f.Mode == ModeCrashAfter {
		return o.crash(f)
	}
	return nil
}

func (o *options) crash(f Fault) providers.Diagnostics {
	exit := o.exit
	if exit == nil {
		exit = os.Exit
	}
	exit(crashStatus)
	// Reached only when a test replaced exit.
	return providers.Errorf("injected fault: the provider crashed (%s)", f)
}

// sleep waits for the configured delay or until ctx is done.
func (o *options) sleep(ctx context.Context) providers.Diagnostics {
	if o.delay <= 0 {
		return nil
	}
	t := time.NewTimer(o.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return providers.Errorf("cancelled while waiting: %v", ctx.Err())
	}
}
