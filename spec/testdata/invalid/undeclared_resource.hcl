# want: Reference to undeclared resource at 3: thing.nope
thing "a" {
  name = thing.nope.id
}
