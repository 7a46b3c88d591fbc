// Package gitsync gives the berth agent its configuration from a git
// repository: it fetches the tracked branch, tag or pinned commit into a
// cache repository with go-git, optionally verifies the commit's OpenPGP or
// SSH signature, and writes a clean snapshot of the configuration directory
// of a revision for the agent to evaluate.
//
// A Syncer owns its cache directory: a bare repository (repo.git), the
// snapshots (snapshots/<hash>/) and the known_hosts file of ssh remotes. The
// cache survives restarts; a Syncer made again on the same directory reopens
// it.
package gitsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/internal/fsync"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Options configures a Syncer.
type Options struct {
	// URL is the repository: https://, http://, ssh://, user@host:path,
	// git://, file:// or a plain absolute path (a local repository).
	// Credentials in an http(s) URL are moved to Auth and never shown.
	URL string
	// Branch is the tracked branch; it defaults to "main" when Tag and
	// Commit are empty. Only one of Branch, Tag and Commit may be set.
	Branch string
	// Tag is the tracked tag.
	Tag string
	// Commit pins a full 40-hex commit hash.
	Commit string
	// Path is the directory inside the repository holding the
	// configuration ("" is the root). It must be relative, without "..".
	Path string
	// Dir is the cache directory, owned by the Syncer.
	Dir string
	// Auth holds the credentials for the remote.
	Auth Auth
	// CABundle holds extra PEM certificates trusted for https remotes.
	CABundle []byte
	// Verify, when not nil, is used by Syncer.Verify to check signatures.
	Verify *Verifier
	// Logger receives the Syncer's logs; nil discards them.
	Logger *slog.Logger
}

// Revision is one commit of the tracked ref.
type Revision struct {
	// Ref is the branch or tag name, or "" for a pinned commit.
	Ref string
	// Hash is the full 40-hex commit hash.
	Hash string
	// Time is the committer time.
	Time time.Time
	// Author is the commit's author, "Name <email>".
	Author string
	// Subject is the first line of the commit message.
	Subject string
}

// String returns the revision as "main@sha1:<hash>", "v1.2@sha1:<hash>"
// for a tag or "sha1:<hash>" for a pinned commit.
func (r Revision) String() string {
	if r.Ref == "" {
		return "sha1:" + r.Hash
	}
	return r.Ref + "@sha1:" + r.Hash
}

// ParseRevision parses a revision written by Revision.String. Only Ref
// and Hash are set.
func ParseRevision(s string) (Revision, error) {
	i := strings.LastIndex(s, "sha1:")
	if i < 0 {
		return Revision{}, fmt.Errorf("revision %q: missing sha1:", s)
	}
	ref, hash := s[:i], s[i+len("sha1:"):]
	if !isHash(hash) {
		return Revision{}, fmt.Errorf("revision %q: hash is not 40 lowercase hex digits", s)
	}
	if ref != "" {
		if !strings.HasSuffix(ref, "@") || len(ref) == 1 {
			return Revision{}, fmt.Errorf("revision %q: expected REF@sha1:HASH or sha1:HASH", s)
		}
		ref = strings.TrimSuffix(ref, "@")
	}
	return Revision{Ref: ref, Hash: hash}, nil
}

// refKind says what a Syncer tracks.
type refKind int

const (
	trackBranch refKind = iota
	trackTag
	trackCommit
)

// Syncer fetches the tracked ref of one repository into its cache
// directory and writes snapshots of revisions. Its methods are safe for
// concurrent use.
type Syncer struct {
	url     string // the URL given to go-git, without credentials
	display string // the URL shown in errors and logs
	kind    refKind
	ref     string // branch or tag name
	commit  plumbing.Hash
	subdir  string // cleaned Options.Path, "" for the root
	dir     string
	auth    *remoteAuth
	ca      []byte
	verify  *Verifier
	log     *slog.Logger

	mu   sync.Mutex
	repo *git.Repository
}

// maxPacks is the number of pack files above which the cache repository
// is started afresh before a fetch: each fetch adds one pack.
const maxPacks = 64

// New checks opts and returns a Syncer. It does not touch the network or
// the disk; the cache directory is made or reopened on first use.
func New(opts Options) (*Syncer, error) {
	s := &Syncer{verify: opts.Verify, log: opts.Logger, ca: opts.CABundle}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ep, err := s.parseURL(&opts)
	if err != nil {
		return nil, err
	}
	if err := s.parseRef(opts); err != nil {
		return nil, err
	}
	s.subdir, err = cleanPath(opts.Path)
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("dir: the cache directory is required")
	}
	if s.dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	s.auth, err = newRemoteAuth(ep, opts.Auth, s.dir)
	if err != nil {
		return nil, err
	}
	if ep.Protocol == "http" && s.auth.method != nil {
		s.log.Warn("git credentials are sent over plain http", "url", s.display)
	}
	return s, nil
}

// parseURL checks opts.URL, moves credentials found in an http(s) URL to
// opts.Auth and sets s.url and s.display.
func (s *Syncer) parseURL(opts *Options) (*transport.Endpoint, error) {
	raw := opts.URL
	if raw == "" {
		return nil, errors.New("url: the repository URL is required")
	}
	if strings.ContainsAny(raw, "\x00\n\r") {
		return nil, errors.New("url: contains a control character")
	}
	if !strings.Contains(raw, "://") && !filepath.IsAbs(raw) && !isSCPLike(raw) {
		return nil, fmt.Errorf("url: %q is not a URL, user@host:path or an absolute path", raw)
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("url: %w", redactErr(err, urlSecrets(raw)))
	}
	switch ep.Protocol {
	case "https", "http", "ssh", "git", "file":
	default:
		return nil, fmt.Errorf("url: unsupported scheme %q (use https, http, ssh, git or file)", ep.Protocol)
	}
	if ep.Protocol == "file" && !filepath.IsAbs(ep.Path) {
		return nil, fmt.Errorf("url: %q: the path of a local repository must be absolute", raw)
	}
	switch ep.Protocol {
	case "https", "http":
		if ep.Password != "" {
			if opts.Auth.Password != "" || opts.Auth.Token != "" {
				return nil, errors.New("url: credentials are in both the URL and Auth; keep them in Auth")
			}
			opts.Auth.Password = ep.Password
		}
		if ep.User != "" && opts.Auth.Username == "" {
			opts.Auth.Username = ep.User
		}
		ep.User, ep.Password = "", ""
	case "ssh":
		if ep.Password != "" {
			return nil, errors.New("url: ssh passwords are not supported; use Auth.SSHKey")
		}
		if ep.User != "" && opts.Auth.SSHUser == "" {
			opts.Auth.SSHUser = ep.User
		}
	}
	if ep.Protocol == "file" || (!strings.Contains(raw, "://") && filepath.IsAbs(raw)) {
		s.url = raw
	} else {
		s.url = ep.String()
	}
	s.display = displayURL(ep)
	if ep.Protocol == "file" {
		s.display = raw
	}
	return ep, nil
}

// isSCPLike reports whether u looks like user@host:path or host:path.
func isSCPLike(u string) bool {
	i := strings.Index(u, ":")
	if i <= 0 {
		return false
	}
	slash := strings.Index(u, "/")
	return slash < 0 || slash > i
}

// displayURL renders ep without any password.
func displayURL(ep *transport.Endpoint) string {
	c := *ep
	c.Password = ""
	if c.Protocol == "https" || c.Protocol == "http" {
		c.User = ""
	}
	return c.String()
}

func (s *Syncer) parseRef(opts Options) error {
	n := 0
	for _, v := range []string{opts.Branch, opts.Tag, opts.Commit} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("branch, tag, commit: set only one of them")
	}
	switch {
	case opts.Commit != "":
		c := strings.ToLower(opts.Commit)
		if !isHash(c) {
			return fmt.Errorf("commit: %q is not a full 40-hex commit hash", opts.Commit)
		}
		s.kind, s.commit = trackCommit, plumbing.NewHash(c)
	case opts.Tag != "":
		t := strings.TrimPrefix(opts.Tag, "refs/tags/")
		if err := plumbing.NewTagReferenceName(t).Validate(); err != nil {
			return fmt.Errorf("tag: %q is not a valid tag name", opts.Tag)
		}
		s.kind, s.ref = trackTag, t
	default:
		b := strings.TrimPrefix(opts.Branch, "refs/heads/")
		if b == "" {
			b = "main"
		}
		if err := plumbing.NewBranchReferenceName(b).Validate(); err != nil {
			return fmt.Errorf("branch: %q is not a valid branch name", opts.Branch)
		}
		s.kind, s.ref = trackBranch, b
	}
	return nil
}

// cleanPath checks the Path option and returns it cleaned, "" for the root.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("path: contains a NUL byte")
	}
	if path.IsAbs(p) || filepath.IsAbs(p) {
		return "", fmt.Errorf("path: %q must be relative to the repository root", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("path: %q must not contain \"..\"", p)
		}
		if el == ".git" {
			return "", fmt.Errorf("path: %q must not name .git", p)
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	return c, nil
}

func (s *Syncer) repoDir() string      { return filepath.Join(s.dir, "repo.git") }
func (s *Syncer) snapshotsDir() string { return filepath.Join(s.dir, "snapshots") }

// describe names the tracked ref in errors and logs.
func (s *Syncer) describe() string {
	switch s.kind {
	case trackTag:
		return fmt.Sprintf("tag %q", s.ref)
	case trackCommit:
		return "commit " + s.commit.String()
	default:
		return fmt.Sprintf("branch %q", s.ref)
	}
}

// openLocked makes or reopens the cache directory. s.mu must be held.
func (s *Syncer) openLocked() error {
	if s.repo != nil {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	if err := s.auth.prepare(); err != nil {
		return err
	}
	if err := s.checkSnapshotPath(); err != nil {
		return err
	}
	repo, err := git.PlainOpen(s.repoDir())
	if err != nil {
		if !errors.Is(err, git.ErrRepositoryNotExists) {
			s.log.Warn("git cache unreadable, starting afresh", "dir", s.repoDir(), "err", err)
		}
		return s.resetLocked()
	}
	s.repo = repo
	return nil
}

// resetLocked makes the cache repository anew. s.mu must be held.
func (s *Syncer) resetLocked() error {
	s.repo = nil
	if err := os.RemoveAll(s.repoDir()); err != nil {
		return fmt.Errorf("cache repository: %w", err)
	}
	repo, err := git.PlainInit(s.repoDir(), true)
	if err != nil {
		return fmt.Errorf("cache repository: %w", err)
	}
	s.repo = repo
	return nil
}

// checkSnapshotPath drops the snapshots when they were written for
// another Path: a snapshot's directory is named after the commit only.
func (s *Syncer) checkSnapshotPath() error {
	marker := filepath.Join(s.dir, "snapshot-path")
	want := "/" + s.subdir + "\n"
	got, err := os.ReadFile(marker)
	if err == nil && string(got) == want {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("snapshots: %w", err)
	}
	if err := os.RemoveAll(s.snapshotsDir()); err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	return fsync.WriteFile(marker, []byte(want), 0o600)
}

// Fetch brings the tracked ref's tip into the cache repository and
// returns it. A branch or tag is fetched shallow (depth 1); a pinned
// commit already in the cache needs no network, otherwise it is fetched
// directly when the server allows it, or by deepening the fetch of every
// branch and tag until it is found.
func (s *Syncer) Fetch(ctx context.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openLocked(); err != nil {
		return Revision{}, err
	}
	if n, err := countPacks(s.repoDir()); err == nil && n > maxPacks {
		s.log.Debug("git cache has many packs, starting afresh", "packs", n)
		if err := s.resetLocked(); err != nil {
			return Revision{}, err
		}
	}
	var (
		hash plumbing.Hash
		err  error
	)
	switch s.kind {
	case trackCommit:
		hash, err = s.fetchCommit(ctx)
	case trackTag:
		local := plumbing.NewTagReferenceName(s.ref)
		hash, err = s.fetchRef(ctx, local, local)
	default:
		hash, err = s.fetchRef(ctx, plumbing.NewBranchReferenceName(s.ref),
			plumbing.NewRemoteReferenceName("origin", s.ref))
	}
	if err != nil {
		return Revision{}, err
	}
	c, err := s.repo.CommitObject(hash)
	if err != nil {
		return Revision{}, fmt.Errorf("fetch %s from %s: %s is not a commit: %w", s.describe(), s.display, hash, err)
	}
	rev := revisionOf(s.ref, c)
	if s.kind == trackCommit {
		rev.Ref = ""
	}
	s.log.Debug("fetched", "revision", rev.String(), "url", s.display)
	return rev, nil
}

func revisionOf(ref string, c *object.Commit) Revision {
	subject, _, _ := strings.Cut(strings.TrimLeft(c.Message, "\n"), "\n")
	return Revision{
		Ref:     ref,
		Hash:    c.Hash.String(),
		Time:    c.Committer.When,
		Author:  fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Subject: strings.TrimSpace(subject),
	}
}

// fetchRef fetches the remote ref into local with depth 1 and returns the
// commit it points to, tags peeled.
func (s *Syncer) fetchRef(ctx context.Context, remote, local plumbing.ReferenceName) (plumbing.Hash, error) {
	spec := config.RefSpec("+" + remote.String() + ":" + local.String())
	if err := s.fetch(ctx, []config.RefSpec{spec}, 1); err != nil {
		var nomatch git.NoMatchingRefSpecError
		if errors.As(err, &nomatch) {
			return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: not found", s.describe(), s.display)
		}
		return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", s.describe(), s.display, err)
	}
	ref, err := s.repo.Reference(local, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", s.describe(), s.display, err)
	}
	h, err := s.peel(ref.Hash())
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", s.describe(), s.display, err)
	}
	return h, nil
}

// peel follows annotated tags to the commit they name.
func (s *Syncer) peel(h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		t, err := s.repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return h, nil
		}
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if t.TargetType != plumbing.CommitObject && t.TargetType != plumbing.TagObject {
			return plumbing.ZeroHash, fmt.Errorf("tag points to a %s, not a commit", t.TargetType)
		}
		h = t.Target
	}
	return plumbing.ZeroHash, errors.New("too many nested tags")
}

func (s *Syncer) fetchCommit(ctx context.Context) (plumbing.Hash, error) {
	if s.hasCommit(s.commit) {
		return s.commit, nil
	}
	spec := config.RefSpec("+" + s.commit.String() + ":refs/berth/pinned")
	err := s.fetch(ctx, []config.RefSpec{spec}, 1)
	if err == nil && s.hasCommit(s.commit) {
		return s.commit, nil
	}
	if err != nil && !fallsBack(err) {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", s.describe(), s.display, err)
	}
	if err != nil {
		s.log.Debug("fetch by hash refused, deepening the branches", "commit", s.commit.String(), "err", err)
	}
	// The server refuses to send a commit by hash: deepen the fetch of
	// every branch and tag until the commit comes (0x7fffffff is git's
	// "infinite" depth).
	all := []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"}
	for _, d := range []int{1, 100, 0x7fffffff} {
		if err := s.fetch(ctx, all, d); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", s.describe(), s.display, err)
		}
		if s.hasCommit(s.commit) {
			return s.commit, nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: not found in any branch or tag", s.describe(), s.display)
}

// fallsBack reports whether a failed fetch by hash is worth retrying by
// deepening: the server may not serve commits by hash, or only tips.
func fallsBack(err error) bool {
	for _, e := range []error{
		transport.ErrAuthenticationRequired, transport.ErrAuthorizationFailed,
		transport.ErrRepositoryNotFound, context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

func (s *Syncer) hasCommit(h plumbing.Hash) bool {
	_, err := s.repo.CommitObject(h)
	return err == nil
}

// fetch runs one go-git fetch; "already up to date" is no error. The
// error it returns has the credentials scrubbed from its text.
func (s *Syncer) fetch(ctx context.Context, specs []config.RefSpec, depth int) error {
	r := git.NewRemote(s.repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{s.url}})
	err := r.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: specs,
		Depth:    depth,
		Auth:     s.auth.method,
		Tags:     git.NoTags,
		Force:    true,
		CABundle: s.ca,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return redactErr(err, s.auth.secrets)
}

// countPacks returns the number of pack files of the bare repository dir.
func countPacks(dir string) (int, error) {
	m, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	return len(m), err
}

// Verify checks the signature of rev's commit with Options.Verify. It
// returns nil when no Verifier is set, a *VerifyError when the commit is
// refused, and another error when the commit cannot be read.
func (s *Syncer) Verify(ctx context.Context, rev Revision) error {
	if s.verify == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.commitLocked(rev)
	if err != nil {
		return err
	}
	signer, err := s.verify.verifyCommit(c)
	if err != nil {
		s.log.Debug("commit refused", "revision", rev.String(), "err", err)
		return err
	}
	s.log.Debug("commit signature verified", "revision", rev.String(), "signer", signer)
	return nil
}

// commitLocked reads rev's commit from the cache repository. s.mu must
// be held.
func (s *Syncer) commitLocked(rev Revision) (*object.Commit, error) {
	if !isHash(rev.Hash) {
		return nil, fmt.Errorf("revision %q: hash is not 40 lowercase hex digits", rev.Hash)
	}
	if err := s.openLocked(); err != nil {
		return nil, err
	}
	c, err := s.repo.CommitObject(plumbing.NewHash(rev.Hash))
	if err != nil {
		return nil, fmt.Errorf("revision %s: not in the git cache (fetch it first): %w", rev, err)
	}
	return c, nil
}
