# want: Invalid ignore_changes entry at 2: Did you mean "value"?
thing "a" {
  name = "a"
  lifecycle {
    ignore_changes = [valeu]
  }
}
