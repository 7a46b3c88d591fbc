# want: Reference to undeclared variable at 6: Did you mean var.region?
variable "region" {
  default = "eu"
}
thing "a" {
  name = var.regoin
}
