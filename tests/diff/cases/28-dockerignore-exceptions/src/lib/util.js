util()
