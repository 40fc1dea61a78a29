printf 'id,name\n1,a\n' | gzip -n > data.csv.gz
chmod 755 scripts/migrate.sh
