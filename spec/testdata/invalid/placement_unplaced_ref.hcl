# want: Reference to a resource not placed on this host at 8: which is not placed on host "h1"
thing "data" {
  placement {
    hosts = ["db-1"]
  }
}
widget "w" {
  label = thing.data.id
}
