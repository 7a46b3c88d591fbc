package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client calls an agent's API, over its unix socket or over HTTPS.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// ClientOptions say how to reach an agent.
type ClientOptions struct {
	// Addr is unix:///path/to/agent.sock, a plain socket path, or
	// https://host:port.
	Addr string
	// Token is the bearer token for HTTPS.
	Token string
	// CAFile verifies the agent's certificate; empty means the system's
	// roots.
	CAFile string
}

// NewClient returns a client for the agent at opts.Addr.
func NewClient(opts ClientOptions) (*Client, error) {
	addr := opts.Addr
	switch {
	case strings.HasPrefix(addr, "https://"):
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pool, err := certPool(opts.CAFile)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = pool
		}
		if opts.Token == "" {
			return nil, fmt.Errorf("an agent over HTTPS needs its API token: give --token-file or set BERTH_AGENT_TOKEN")
		}
		return &Client{base: strings.TrimSuffix(addr, "/"), token: opts.Token, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}}, nil
	case strings.HasPrefix(addr, "http://"):
		return nil, fmt.Errorf("%s: the agent's TCP API is served over HTTPS only; write https://", addr)
	}
	path := strings.TrimPrefix(addr, "unix://")
	if path == "" {
		return nil, fmt.Errorf("no agent address: give --agent unix:///path/agent.sock or https://host:port")
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{base: "http://agent", hc: &http.Client{Transport: tr}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/gzip")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent: %w\n\nIs `berth agent` running? Give its address with --agent (unix:///path/agent.sock or https://host:port)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the agent's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("agent: %s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("agent: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the agent's answer is not understood: %w", err)
	}
	return nil
}

// Status returns the agent's own status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Fleet returns the fleet as the agent sees it.
func (c *Client) Fleet(ctx context.Context) (FleetView, error) {
	var f FleetView
	err := c.do(ctx, http.MethodGet, "/v1/fleet", nil, &f)
	return f, err
}

// Sync asks the agent, and through it the fleet, to fetch at once.
func (c *Client) Sync(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/sync", nil, nil)
}

// FleetPlan sends the configuration in dir to the fleet and returns each
// host's plan.
func (c *Client) FleetPlan(ctx context.Context, dir string) (FleetPlan, error) {
	var buf bytes.Buffer
	var fp FleetPlan
	if err := WriteBundle(&buf, dir); err != nil {
		return fp, err
	}
	if buf.Len() > MaxBundle {
		return fp, fmt.Errorf("%s is %d MiB compressed; the agent takes at most %d MiB", dir, buf.Len()>>20, MaxBundle>>20)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	err := c.do(ctx, http.MethodPost, "/v1/fleet/plan", &buf, &fp)
	return fp, err
}
