chmod 644 heredoc/*
