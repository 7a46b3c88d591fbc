package webhook

// Hand-written payloads shaped like those the git hosts send, trimmed of
// fields berth does not read but keeping enough of them to look real.

const (
	commitMain = "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b"
	commitTag  = "5e0d1c2b3a49687766554433221100ffeeddccbb"
	tagObject  = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
	zeroHash   = "0000000000000000000000000000000000000000"
)

const githubPush = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
  "repository": {
    "id": 1296269,
    "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
    "name": "fleet",
    "full_name": "acme/fleet",
    "private": true,
    "owner": {"name": "acme", "login": "acme", "id": 42},
    "clone_url": "https://github.com/acme/fleet.git",
    "ssh_url": "git@github.com:acme/fleet.git",
    "default_branch": "main",
    "pushed_at": 1741079472
  },
  "pusher": {"name": "alice", "email": "alice@example.com"},
  "sender": {"login": "alice", "id": 7, "type": "User"},
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/acme/fleet/compare/6113728f27ae...9f2c3b1e5d7a",
  "commits": [
    {
      "id": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
      "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
      "distinct": true,
      "message": "web: two replicas on role=web hosts",
      "timestamp": "2025-03-04T10:11:12+01:00",
      "url": "https://github.com/acme/fleet/commit/9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
      "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
      "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
      "added": [],
      "removed": [],
      "modified": ["web.hcl"]
    }
  ],
  "head_commit": {
    "id": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
    "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "distinct": true,
    "message": "web: two replicas on role=web hosts",
    "timestamp": "2025-03-04T10:11:12+01:00",
    "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"}
  }
}`

// githubTagPush is an annotated tag: after is the tag object, head_commit
// the commit it points at.
const githubTagPush = `{
  "ref": "refs/tags/v1.2.0",
  "before": "0000000000000000000000000000000000000000",
  "after": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
  "repository": {"id": 1296269, "name": "fleet", "full_name": "acme/fleet", "private": true},
  "pusher": {"name": "alice", "email": "alice@example.com"},
  "created": true,
  "deleted": false,
  "forced": false,
  "base_ref": "refs/heads/main",
  "commits": [],
  "head_commit": {"id": "5e0d1c2b3a49687766554433221100ffeeddccbb", "message": "release 1.2.0"}
}`

// githubDelete is the push of a deleted branch.
const githubDelete = `{
  "ref": "refs/heads/feature/old",
  "before": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
  "after": "0000000000000000000000000000000000000000",
  "repository": {"id": 1296269, "name": "fleet", "full_name": "acme/fleet"},
  "created": false,
  "deleted": true,
  "forced": false,
  "commits": [],
  "head_commit": null
}`

const githubPing = `{
  "zen": "Keep it logically awesome.",
  "hook_id": 530144071,
  "hook": {
    "type": "Repository",
    "id": 530144071,
    "name": "web",
    "active": true,
    "events": ["push"],
    "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://agent.example.com/v1/hooks/github"}
  },
  "repository": {"id": 1296269, "name": "fleet", "full_name": "acme/fleet"},
  "sender": {"login": "alice", "id": 7}
}`

const giteaPush = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
  "compare_url": "https://gitea.example.com/infra/fleet/compare/6113728f27ae82c7b1a177c8d03f9e96e0adf246...9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
  "commits": [
    {
      "id": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
      "message": "db: pin postgres 16.4\n",
      "url": "https://gitea.example.com/infra/fleet/commit/9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
      "author": {"name": "Bob", "email": "bob@example.com", "username": "bob"},
      "committer": {"name": "Bob", "email": "bob@example.com", "username": "bob"},
      "verification": null,
      "timestamp": "2025-03-04T09:00:00Z",
      "added": [],
      "removed": [],
      "modified": ["db.hcl"]
    }
  ],
  "total_commits": 1,
  "head_commit": {
    "id": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
    "message": "db: pin postgres 16.4\n",
    "timestamp": "2025-03-04T09:00:00Z"
  },
  "repository": {
    "id": 12,
    "owner": {"id": 3, "login": "infra", "full_name": "", "email": "", "username": "infra"},
    "name": "fleet",
    "full_name": "infra/fleet",
    "private": true,
    "html_url": "https://gitea.example.com/infra/fleet",
    "clone_url": "https://gitea.example.com/infra/fleet.git",
    "default_branch": "main"
  },
  "pusher": {"id": 5, "login": "bob", "username": "bob"},
  "sender": {"id": 5, "login": "bob", "username": "bob"}
}`

const giteaTagPush = `{
  "ref": "refs/tags/v2",
  "before": "0000000000000000000000000000000000000000",
  "after": "5e0d1c2b3a49687766554433221100ffeeddccbb",
  "compare_url": "",
  "commits": [],
  "total_commits": 0,
  "head_commit": null,
  "repository": {"id": 12, "name": "fleet", "full_name": "infra/fleet"},
  "pusher": {"id": 5, "login": "bob"},
  "sender": {"id": 5, "login": "bob"}
}`

const gitlabPush = `{
  "object_kind": "push",
  "event_name": "push",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
  "ref": "refs/heads/main",
  "ref_protected": true,
  "checkout_sha": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
  "message": null,
  "user_id": 4,
  "user_name": "Carol Smith",
  "user_username": "carol",
  "user_email": "",
  "user_avatar": "https://gitlab.example.com/uploads/-/system/user/avatar/4/avatar.png",
  "project_id": 15,
  "project": {
    "id": 15,
    "name": "fleet",
    "description": "",
    "web_url": "https://gitlab.example.com/infra/fleet",
    "git_ssh_url": "git@gitlab.example.com:infra/fleet.git",
    "git_http_url": "https://gitlab.example.com/infra/fleet.git",
    "namespace": "infra",
    "visibility_level": 0,
    "path_with_namespace": "infra/fleet",
    "default_branch": "main"
  },
  "commits": [
    {
      "id": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
      "message": "cache: add a sidecar everywhere\n",
      "title": "cache: add a sidecar everywhere",
      "timestamp": "2025-03-04T11:00:00+00:00",
      "url": "https://gitlab.example.com/infra/fleet/-/commit/9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b",
      "author": {"name": "Carol Smith", "email": "[REDACTED]"},
      "added": ["sidecar.hcl"],
      "modified": [],
      "removed": []
    }
  ],
  "total_commits_count": 1,
  "repository": {
    "name": "fleet",
    "url": "git@gitlab.example.com:infra/fleet.git",
    "description": "",
    "homepage": "https://gitlab.example.com/infra/fleet",
    "git_http_url": "https://gitlab.example.com/infra/fleet.git",
    "git_ssh_url": "git@gitlab.example.com:infra/fleet.git",
    "visibility_level": 0
  }
}`

// gitlabTagPush: after is the tag object, checkout_sha the commit.
const gitlabTagPush = `{
  "object_kind": "tag_push",
  "event_name": "tag_push",
  "before": "0000000000000000000000000000000000000000",
  "after": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
  "ref": "refs/tags/v1.0.0",
  "ref_protected": false,
  "checkout_sha": "5e0d1c2b3a49687766554433221100ffeeddccbb",
  "user_id": 1,
  "user_name": "Carol Smith",
  "user_username": "carol",
  "project_id": 15,
  "project": {"id": 15, "name": "fleet", "path_with_namespace": "infra/fleet", "default_branch": "main"},
  "commits": [],
  "total_commits_count": 0,
  "repository": {"name": "fleet", "url": "git@gitlab.example.com:infra/fleet.git"}
}`

const gitlabMergeRequest = `{
  "object_kind": "merge_request",
  "event_type": "merge_request",
  "user": {"id": 1, "name": "Carol Smith", "username": "carol"},
  "project": {"id": 15, "name": "fleet", "path_with_namespace": "infra/fleet"},
  "object_attributes": {"id": 99, "iid": 3, "target_branch": "main", "source_branch": "feature", "state": "opened"}
}`

const genericPush = `{"ref": "refs/heads/main", "after": "9f2c3b1e5d7a4c8b0e6f1a2d3c4b5a6978695a4b"}`
