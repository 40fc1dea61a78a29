ln tools/data.bin tools/data-copy.bin
chmod 755 tools/busybox-wrapper
