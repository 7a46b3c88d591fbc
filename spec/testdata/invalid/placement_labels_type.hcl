# want: Invalid placement at 4: must be a map of strings
thing "a" {
  placement {
    labels = ["web"]
  }
}
