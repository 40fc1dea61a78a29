mkdir -p stage/autoload && echo '<?php' > stage/autoload/autoload.php
tar -C stage --owner=0 --group=0 --numeric-owner -cf vendor.tar autoload
rm -rf stage
