# want: Invalid reference in placement at 5: A placement may refer only to host, var and local.
thing "db" {}
thing "a" {
  placement {
    when = thing.db.name != ""
  }
}
