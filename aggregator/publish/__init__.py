"""Publishing: selecting entries and rendering them (feeds, JSON Feed, Hexo posts, OPML)."""
