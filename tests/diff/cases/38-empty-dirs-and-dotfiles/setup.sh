mkdir -p skel/.cache skel/bin skel/.local/share
