chmod 700 conf/conf.d
