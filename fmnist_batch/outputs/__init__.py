"""Where rows go: the writer and its formats, resume, shards and merge, the summary, the HTML report."""
