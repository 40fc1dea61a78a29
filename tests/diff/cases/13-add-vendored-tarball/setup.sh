set -e
mkdir -p stage/libfoo-1.2/lib stage/libfoo-1.2/include stage/assets/css
echo 'int foo(void);' > stage/libfoo-1.2/include/foo.h
printf '\177ELF-fake' > stage/libfoo-1.2/lib/libfoo.so.1.2
ln -s libfoo.so.1.2 stage/libfoo-1.2/lib/libfoo.so
chmod 755 stage/libfoo-1.2/lib/libfoo.so.1.2
echo 'body{}' > stage/assets/css/app.css
echo '<html>' > stage/assets/index.html
mkdir -p vendor
tar -C stage --owner=501 --group=20 --numeric-owner --mtime=@1700000000 -czf vendor/libfoo-1.2.tar.gz libfoo-1.2
tar -C stage/assets --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -cf assets.tar .
rm -rf stage
