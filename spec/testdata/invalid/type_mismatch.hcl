# want: Incorrect attribute value type at 4: a number is required
thing "a" {
  name = "a"
  size = "big"
}
