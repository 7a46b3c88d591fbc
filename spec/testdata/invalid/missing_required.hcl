# want: Missing required argument at 2: "label"
widget "w" {
}
