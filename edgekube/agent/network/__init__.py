"""The node's share of the pod network: host-gw routes, the nftables proxy, cluster DNS, and the loop that runs them."""
