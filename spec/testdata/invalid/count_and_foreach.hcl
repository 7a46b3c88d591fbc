# want: Both count and for_each are set at 4: not both
thing "a" {
  count    = 2
  for_each = toset(["x"])
}
