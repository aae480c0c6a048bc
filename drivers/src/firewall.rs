//! weft's nft firewall: its own tables only, changed through text transactions on `nft -f -`.
