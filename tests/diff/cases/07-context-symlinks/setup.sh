ln -s tool-1.2.3 bin/tool
ln -s ../../shared/missing.conf etc/conf.d/99-local.conf
ln -s main.conf etc/default.conf
chmod 755 bin/tool-1.2.3
