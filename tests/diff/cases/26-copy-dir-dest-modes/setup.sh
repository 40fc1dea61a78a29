chmod 700 private private/keys
chmod 2770 shared
