package sentineltest

import (
	"fmt"
	"sort"
	"strings"
)

// The simulator's own table of data collections, written from public facts:
// sentinelhub-py's data_collections.py (api and catalog ids, service URL,
// has_cloud_coverage, is_timeless) and the OpenAPI schema's dataset types
// (S2L2AFiltering, LandsatFiltering and HLSFiltering have maxCloudCoverage and
// leastCC; S1Filtering, ModisFiltering and BYOCFiltering have neither;
// DEMFiltering has no timeRange at all).

// collection is how the simulated service treats one data collection.
type collection struct {
	// id is the Process API type and, when catalog is set, the catalog id.
	id string
	// deployment serves it: deployMain or deployUSWest.
	deployment string
	// cloudCover: items carry eo:cloud_cover; maxCloudCoverage and leastCC work.
	cloudCover bool
	// timeless collections (DEM) have no dates: no catalog, one data sample.
	timeless bool
	// catalog: the Catalog API has a collection of this id.
	catalog bool
	// itemPrefix starts the ids of its synthetic catalog items.
	itemPrefix string
}

// collections is the table, by id; byoc-<id> and batch-<id> are in lookupCollection.
var collections = map[string]collection{
	"sentinel-2-l1c": {id: "sentinel-2-l1c", deployment: deployMain, cloudCover: true, catalog: true, itemPrefix: "S2L1CSIM"},
	"sentinel-2-l2a": {id: "sentinel-2-l2a", deployment: deployMain, cloudCover: true, catalog: true, itemPrefix: "S2SIM"},
	"sentinel-1-grd": {id: "sentinel-1-grd", deployment: deployMain, catalog: true, itemPrefix: "S1SIM"},
	"dem":            {id: "dem", deployment: deployMain, timeless: true},
	"landsat-ot-l1":  {id: "landsat-ot-l1", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LOTL1SIM"},
	"landsat-ot-l2":  {id: "landsat-ot-l2", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LOTL2SIM"},
	"landsat-tm-l1":  {id: "landsat-tm-l1", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LTML1SIM"},
	"landsat-tm-l2":  {id: "landsat-tm-l2", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LTML2SIM"},
	"landsat-etm-l1": {id: "landsat-etm-l1", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LETML1SIM"},
	"landsat-etm-l2": {id: "landsat-etm-l2", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LETML2SIM"},
	"landsat-mss-l1": {id: "landsat-mss-l1", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "LMSSL1SIM"},
	"hls":            {id: "hls", deployment: deployUSWest, cloudCover: true, catalog: true, itemPrefix: "HLSSIM"},
	"modis":          {id: "modis", deployment: deployUSWest, catalog: true, itemPrefix: "MODISSIM"},
}

// lookupCollection finds a collection by its Process API type or catalog id.
// byoc-<id> and batch-<id> (any non-empty id) are main-deployment collections
// without cloud cover, each with a catalog collection of the same id.
func lookupCollection(id string) (collection, bool) {
	if c, ok := collections[id]; ok {
		return c, true
	}
	for _, kind := range []string{"byoc", "batch"} {
		if rest, ok := strings.CutPrefix(id, kind+"-"); ok && rest != "" {
			return collection{id: id, deployment: deployMain, catalog: true, itemPrefix: strings.ToUpper(kind) + "SIM"}, true
		}
	}
	return collection{}, false
}

// knownCollections lists the table's ids for error messages.
func knownCollections() string {
	ids := make([]string, 0, len(collections)+2)
	for id := range collections {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(append(ids, "byoc-<id>", "batch-<id>"), ", ")
}

// deploymentName is how error messages name a deployment.
func deploymentName(dep string) string {
	if dep == deployUSWest {
		return "the US West deployment (" + USWestPrefix + ", services-uswest2.sentinel-hub.com)"
	}
	return "the main deployment (services.sentinel-hub.com)"
}

// wrongDeployment is the message for a collection asked of the wrong deployment.
func wrongDeployment(c collection, dep string) string {
	return fmt.Sprintf("collection %q is not available on this deployment, %s; it is served on %s",
		c.id, deploymentName(dep), deploymentName(c.deployment))
}
