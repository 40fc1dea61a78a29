module example.com/auth
