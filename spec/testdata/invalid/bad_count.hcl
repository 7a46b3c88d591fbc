# want: Invalid count at 3: whole number
thing "a" {
  count = -1
}
