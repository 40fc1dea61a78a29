VIEWS = []
