ln -s 20240501 releases/current
chmod 755 releases/*/bin/app
