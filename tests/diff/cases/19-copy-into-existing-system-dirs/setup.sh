chmod 700 tmpfiles rootfiles
chmod 750 spool
