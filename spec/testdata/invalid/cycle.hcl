# want: Dependency cycle at 3: thing.a → thing.b → thing.a
thing "a" {
  name = thing.b.id
}
thing "b" {
  name = thing.a.id
}
