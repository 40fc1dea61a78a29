chmod 755 bin/server
