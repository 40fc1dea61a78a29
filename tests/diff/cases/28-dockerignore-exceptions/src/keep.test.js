kept()
