package sentinel

import (
	"fmt"
	"slices"
	"strings"
)

// Collection describes one data collection as the Process and Catalog APIs see
// it: where it is served and which filters its dataFilter accepts (the OpenAPI
// schema's *Filtering types).
type Collection struct {
	// ID is the Process API data type, e.g. "sentinel-2-l2a".
	ID string
	// CatalogID is the Catalog API collection, "" for a timeless collection (DEM)
	// that has no catalog entry and no acquisition dates.
	CatalogID string
	// Deployment is where the collection is served: [DeploymentMain] or
	// [DeploymentUSWest].
	Deployment string
	// CloudCover says the collection has a cloud cover: maxCloudCoverage in the
	// Process API, eo:cloud_cover in the Catalog API, and the leastCC order.
	CloudCover bool
	// TimeRange says the dataFilter takes a timeRange (false for DEM).
	TimeRange bool
}

// Timeless reports whether the collection has no acquisition dates (DEM).
func (c Collection) Timeless() bool { return c.CatalogID == "" }

// MosaickingOrders are the mosaicking orders the collection accepts.
func (c Collection) MosaickingOrders() []string {
	switch {
	case !c.TimeRange:
		return nil
	case c.CloudCover:
		return []string{MosaickingMostRecent, MosaickingLeastRecent, MosaickingLeastCC}
	}
	return []string{MosaickingMostRecent, MosaickingLeastRecent}
}

// AcceptsOrder reports whether order is a mosaicking order of the collection ("" is
// always accepted: the server's default).
func (c Collection) AcceptsOrder(order string) bool {
	return order == "" || slices.Contains(c.MosaickingOrders(), order)
}

// Collections is shfleet's table of the collections it knows, in the order the CLI
// lists them. Landsat, HLS and MODIS are on the US West deployment (sentinelhub-py
// ServiceUrl.USWEST); the rest on the main one. Filters follow the OpenAPI schema
// (S2L2AFiltering, LandsatFiltering, HLSFiltering: cloud cover and leastCC;
// S1Filtering, ModisFiltering, BYOCFiltering: neither; DEMFiltering: no time range).
// BYOC and Batch collections ("byoc-<id>", "batch-<id>") are matched by
// [LookupCollection].
var Collections = []Collection{
	{ID: "sentinel-2-l1c", CatalogID: "sentinel-2-l1c", Deployment: DeploymentMain, CloudCover: true, TimeRange: true},
	{ID: "sentinel-2-l2a", CatalogID: "sentinel-2-l2a", Deployment: DeploymentMain, CloudCover: true, TimeRange: true},
	{ID: "sentinel-1-grd", CatalogID: "sentinel-1-grd", Deployment: DeploymentMain, TimeRange: true},
	{ID: "dem", Deployment: DeploymentMain},
	{ID: "landsat-ot-l1", CatalogID: "landsat-ot-l1", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "landsat-ot-l2", CatalogID: "landsat-ot-l2", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "landsat-etm-l1", CatalogID: "landsat-etm-l1", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "landsat-etm-l2", CatalogID: "landsat-etm-l2", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "landsat-tm-l1", CatalogID: "landsat-tm-l1", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "landsat-tm-l2", CatalogID: "landsat-tm-l2", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "landsat-mss-l1", CatalogID: "landsat-mss-l1", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "hls", CatalogID: "hls", Deployment: DeploymentUSWest, CloudCover: true, TimeRange: true},
	{ID: "modis", CatalogID: "modis", Deployment: DeploymentUSWest, TimeRange: true},
}

// LookupCollection returns the collection id names: one of [Collections], or a
// BYOC/Batch collection "byoc-<id>" / "batch-<id>" (main deployment, catalog
// collection of the same name, no cloud cover).
func LookupCollection(id string) (Collection, bool) {
	for _, c := range Collections {
		if c.ID == id {
			return c, true
		}
	}
	for _, p := range []string{"byoc-", "batch-"} {
		if rest, ok := strings.CutPrefix(id, p); ok && validCustomID(rest) {
			return Collection{ID: id, CatalogID: id, Deployment: DeploymentMain, TimeRange: true}, true
		}
	}
	return Collection{}, false
}

// validCustomID accepts the id part of a BYOC/Batch collection: letters, digits
// and dashes, starting with a letter or digit.
func validCustomID(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// CollectionIDs lists the ids of [Collections].
func CollectionIDs() []string {
	out := make([]string, len(Collections))
	for i, c := range Collections {
		out[i] = c.ID
	}
	return out
}

// CheckFilters says whether a job on collection c may use a cloud-cover limit
// (hasCloud) and mosaicking order order; the error names the flag a user changes.
func (c Collection) CheckFilters(hasCloud bool, order string) error {
	if hasCloud && !c.CloudCover {
		return fmt.Errorf("collection %s has no cloud cover (its dataFilter has no maxCloudCoverage); drop --max-cloud", c.ID)
	}
	if !c.AcceptsOrder(order) {
		if len(c.MosaickingOrders()) == 0 {
			return fmt.Errorf("collection %s takes no mosaicking order; drop --mosaicking", c.ID)
		}
		return fmt.Errorf("--mosaicking %q is not accepted by collection %s; use one of %s", order, c.ID, strings.Join(c.MosaickingOrders(), ", "))
	}
	return nil
}
