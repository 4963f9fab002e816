//! Chaos drills that operators run against the fleet: kill a node, partition
//! a region, slow the Docker engine. Filled by a later issue on top of the
//! transport fault injection of the cluster-fabric issue.
