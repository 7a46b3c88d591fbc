# want: Unsupported argument in placement at 4: Its arguments are labels, hosts, when.
thing "a" {
  placement {
    host = ["h1"]
  }
}
