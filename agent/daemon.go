package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/agent/gitsync"
	"github.com/berthhq/berth/agent/gossip"
	"github.com/berthhq/berth/agent/metrics"
	"github.com/berthhq/berth/agent/webhook"
)

// Deps are what the berth command gives the daemon.
type Deps struct {
	Runner     Runner
	Containers metrics.ContainerSource
	Logger     *slog.Logger
	Version    string
	// Idle is called whenever the agent goes back to waiting.
	Idle func()
	// Source replaces the git repository of the configuration (tests).
	Source Source
}

// Serve runs an agent with cfg until ctx ends: git sync, the loop,
// gossip, the API, webhooks and metrics. Containers are left running when
// it returns.
func Serve(ctx context.Context, cfg *Config, d Deps) error {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "agent"), 0o700); err != nil {
		return fmt.Errorf("create the agent's state directory: %w", err)
	}
	src := d.Source
	if src == nil {
		s, err := newSyncer(cfg, log)
		if err != nil {
			return err
		}
		src = s
	}
	met := metrics.New(d.Containers)
	a := New(cfg, Options{Source: src, Runner: d.Runner, Metrics: met, Logger: log, Version: d.Version, Idle: d.Idle})
	peers, err := peerClient(cfg.API)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	a.peers = peers
	hooks := webhook.Handler(webhook.Config{
		Secret: cfg.Webhook.Secret,
		OnPush: func(p webhook.Push) {
			ref := p.Branch
			if p.Tag != "" {
				ref = p.Tag
			}
			log.Info("webhook push", "provider", p.Provider, "ref", p.Ref, "after", p.After)
			a.Announce(ref, p.After)
		},
		OnResult: met.Webhook,
		Logger:   log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var servers []*http.Server
	var wg sync.WaitGroup
	serve := func(what string, ln net.Listener, h http.Handler) {
		// Bundles and hook bodies are small: a request that takes
		// longer to send is dropped rather than left holding a
		// connection.
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listener stopped", "listener", what, "err", err)
			}
		}()
		log.Info("listening", "listener", what, "addr", ln.Addr().String())
	}
	defer func() {
		for _, s := range servers {
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Shutdown(sctx)
			c()
		}
		wg.Wait()
	}()

	api := a.Handler(hooks)
	ln, err := listenUnix(cfg.API.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.API.Socket)
	serve("api (unix)", ln, api)
	var apiAddr string
	if len(cfg.API.Listen) > 0 {
		cert, err := tls.LoadX509KeyPair(cfg.API.CertFile, cfg.API.KeyFile)
		if err != nil {
			return fmt.Errorf("api tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		for _, addr := range cfg.API.Listen {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("api listen %s: %w", addr, err)
			}
			serve("api (tls)", tls.NewListener(l, tc), RequireToken(cfg.API.Token, api))
			if apiAddr == "" {
				apiAddr = advertised(l.Addr().String(), cfg.Gossip)
			}
		}
	}
	if cfg.Webhook.Listen != "" {
		l, err := net.Listen("tcp", cfg.Webhook.Listen)
		if err != nil {
			return fmt.Errorf("webhook listen %s: %w", cfg.Webhook.Listen, err)
		}
		serve("webhook", l, hooks)
	}
	if cfg.Metrics.Listen != "" {
		l, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", cfg.Metrics.Listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		serve("metrics", l, mux)
	}

	g, err := gossip.New(ctx, gossip.Config{
		NodeName:      cfg.Node.Name,
		BindAddr:      cfg.Gossip.Bind,
		AdvertiseAddr: cfg.Gossip.Advertise,
		Join:          cfg.Gossip.Join,
		Key:           cfg.Gossip.Key,
		Insecure:      cfg.Gossip.Insecure,
		Labels:        cfg.Node.Labels,
		Version:       d.Version,
		APIAddr:       apiAddr,
		Logger:        log,
	}, a)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	defer func() {
		_ = g.Leave(2 * time.Second)
		_ = g.Shutdown()
	}()
	a.SetFleet(g)

	go watchContainers(ctx, cfg.StateDir, time.Second, a.CheckDrift)
	if d.Idle != nil {
		d.Idle()
	}
	log.Info("agent started", "node", cfg.Node.Name, "repository", redactURL(cfg.Repository.URL), "gossip", g.LocalAddr())
	return a.Run(ctx)
}

// advertised turns a listener's address into one other hosts can call:
// an unspecified host is replaced by the gossip address's host.
func advertised(addr string, g GossipConfig) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return addr
	}
	for _, a := range []string{g.Advertise, g.Bind} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
				return net.JoinHostPort(h, port)
			}
		}
	}
	return addr
}

// listenUnix listens on a unix socket only root can use: the socket's
// directory is made private when berth creates it, and the socket itself
// has mode 0600. A stale socket from a crashed agent is replaced; a live
// one means another agent runs on the state directory.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent is already serving %s; stop it first", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket: %s exists and is not a socket; choose another path or remove it", path)
		}
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return l, nil
}

// redactURL hides the user information of a repository URL
// (https://user:token@host/...), which may hold a secret.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// An scp-like address (git@host:path) names no password.
		if strings.Contains(s, "://") {
			return "(unparseable URL)"
		}
		return s
	}
	if u.User == nil {
		return s
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// newSyncer makes the git source of cfg.
func newSyncer(cfg *Config, log *slog.Logger) (*gitsync.Syncer, error) {
	r := cfg.Repository
	var v *gitsync.Verifier
	if r.Verifies() {
		var err error
		v, err = gitsync.NewVerifier(r.OpenPGPKeys, r.SSHAllowedSigners)
		if err != nil {
			return nil, fmt.Errorf("repository verify: %w", err)
		}
	}
	s, err := gitsync.New(gitsync.Options{
		URL: r.URL, Branch: r.Branch, Tag: r.Tag, Commit: r.Commit, Path: r.Path,
		Dir: filepath.Join(cfg.StateDir, "agent", "git"),
		Auth: gitsync.Auth{
			Username: r.Username, Password: r.Password, Token: r.Token,
			SSHKey: r.SSHKey, KnownHosts: r.KnownHosts,
		},
		Verify: v,
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	return s, nil
}
