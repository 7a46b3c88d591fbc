# want: Reference to each in a context without for_each at 3: for_each
thing "a" {
  name = each.key
}
