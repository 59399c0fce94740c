package driver

// KernelFeature is a kind of link a driver makes in the host's kernel,
// and what for.
type KernelFeature struct {
	// Kind is the link kind as netlink names it (netdev.KindBridge, …).
	Kind string
	// For says which networks need it, for a report ("networks without
	// -o parent"); empty when every network of the driver does.
	For string
}

// KernelNeeds is implemented by drivers that make links in the host's
// kernel, so that a check of the host (berth doctor) can tell, per driver,
// which of the kinds it makes the kernel lacks, and which networks that
// leaves without their devices. Drivers whose devices are someone else's
// (a plugin's, a CNI chain's) do not implement it.
type KernelNeeds interface {
	// KernelFeatures are the kinds the driver makes.
	KernelFeatures() []KernelFeature
	// NetworkKernelFeatures are the kinds one network of the driver
	// needs.
	NetworkKernelFeatures(nw *Network) []string
}
